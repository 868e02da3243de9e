"""The archive browser: a static site generated into the archive folder, and a loopback server.

`render` fills the Jinja2 templates in `templates/` into plain HTML + CSS + a little vanilla JS
(style.css, archive.js in this folder), so the pages work from disk (file://) with no server
and no build step, and under a strict Content-Security-Policy (no inline script or style).
`server` serves the archive folder on 127.0.0.1 only.
"""
