// The web UI's script; see index.html.
