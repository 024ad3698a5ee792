"""`make bench`: the service against a bare Flask app, side by side in one run."""
