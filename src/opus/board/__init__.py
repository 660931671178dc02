"""What the boards show: jobs sorted into lanes (`opus.board.lanes`), and `opus top`.

The web board (`opus dashboard`) and the terminal board (`opus top`) both draw the same
`Board` snapshot, so a job sits in the same lane, for the same reason, on either.
"""
