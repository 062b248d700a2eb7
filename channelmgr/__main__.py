from channelmgr.cli import main

raise SystemExit(main())
