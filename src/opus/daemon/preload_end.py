"""The last module of a job's fork server's preload (see `preload_begin`).

What the preload made is frozen: moved out of the collector's generations, so neither
the server nor a job process forked from it scans those objects again (and a job's
collections do not touch, and so copy, the server's pages)."""

import gc

gc.freeze()
gc.enable()
