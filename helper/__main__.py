from helper.program import main

raise SystemExit(main())
