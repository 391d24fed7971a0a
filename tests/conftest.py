"""Shared test setup: the IR verifier runs after every pass of every compile in the suite."""

import os

os.environ["SYMBP_VERIFY"] = "1"
