from modelguard_devstack.cli import main

raise SystemExit(main())
