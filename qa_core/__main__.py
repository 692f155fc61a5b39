from qa_core.cli import main

raise SystemExit(main())
