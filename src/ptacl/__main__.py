import sys

from ptacl.cli.main import main

sys.exit(main())
