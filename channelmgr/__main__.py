from channelmgr.cli import main

if __name__ == "__main__":  # not again in a worker process (spawn runs this module as __mp_main__)
    raise SystemExit(main())
