from mnistloc.cli import main

raise SystemExit(main())
