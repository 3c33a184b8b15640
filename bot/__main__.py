"""`python -m bot` is the same as the `wuwei` command."""
from bot.cli import main

raise SystemExit(main())
