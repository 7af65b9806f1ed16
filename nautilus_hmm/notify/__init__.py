"""notify: notification channels fed from a bus queue (apprise in sender threads)."""
