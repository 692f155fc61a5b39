from qa_core.rag.cli import main

raise SystemExit(main())
