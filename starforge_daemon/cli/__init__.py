"""The ``starforge`` command line: parsing and printing only; client/ does the work (daemon/ to start).
"""
