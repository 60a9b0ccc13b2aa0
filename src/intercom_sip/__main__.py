from intercom_sip.cli import main

raise SystemExit(main())
