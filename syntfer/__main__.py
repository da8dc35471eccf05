from syntfer.cli import main

raise SystemExit(main())
