"""One run, end to end: a still (``static``), a clip (``temporal``), or a recorded run again (``rerun``)."""
