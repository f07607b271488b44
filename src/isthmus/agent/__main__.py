"""`python -m isthmus.agent`: run the sidecar agent."""

from isthmus.agent.main import main

raise SystemExit(main())
