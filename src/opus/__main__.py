"""`python -m opus` is `opus`."""

from opus.cli import main

raise SystemExit(main())
