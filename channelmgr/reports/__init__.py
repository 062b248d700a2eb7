"""Reports and settlement (issue 14): what each channel sells, and its statements checked.

- figures: the report figures, aggregated by the database (definitions in its docstring)
- render: the terminal table, CSV and XLSX of a report
- settlement: OTA statements imported and matched against the ledger's bookings
- commands / api: the CLI (`channelmgr report ...`, `channelmgr settlement import`) and /api/v1/reports
"""
