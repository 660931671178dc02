"""The first module of a job's fork server's preload: the garbage collector is paused.

The preload creates ~3,900 modules and their classes, all alive for the server's life;
the collector would walk them again at every generation threshold it crosses, ~0.2 s of
a ~1 s preload. `preload_end` (the last module) freezes what was made and resumes it.
"""

import gc

gc.disable()
