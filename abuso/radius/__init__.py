"""RADIUS accounting: read FreeRADIUS/Livingston ``detail`` logs into an on-disk session index.

``abuso.radius.detail`` turns log bytes into accounting events; ``abuso.radius.index``
folds events into sessions kept in SQLite, refreshed incrementally, and answers
"who held this address at this time". Nothing is imported here: a piped message
whose report has no incident must not pay for sqlite3 and the parsers' regexes.
"""
