"""Server-rendered pages: health, admin."""
