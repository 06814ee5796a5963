"""The ``taskq`` command line: a dispatcher over subcommands, and the ``worker`` subcommand.

Subcommands are entry points of the group ``taskq.cli`` (see `taskq.cli.main`); taskq-core
registers ``worker``, other distributions add their own (``taskq scheduler``, ...).
"""
