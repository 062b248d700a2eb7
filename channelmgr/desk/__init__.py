"""The reservations desk (issue 12): direct bookings, one list of bookings, special requests on
a clock, overbooking ways out, OTA acknowledgement deadlines and suspicious-booking flags.

The CLI (channelmgr/desk/commands.py), the operator API (channelmgr/web/api.py) and the daemon
(a scan job, the daily overbooking check) wire it; the rules live here.
"""
