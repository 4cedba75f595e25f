"""An example third-party p8 plugin: Server-Sent Events as a hold mode and a format."""
