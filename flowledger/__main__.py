from flowledger.cli.main import main

raise SystemExit(main())
