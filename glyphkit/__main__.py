from glyphkit.cli import main

raise SystemExit(main())
