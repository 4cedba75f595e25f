"""p8 plugin: channel occupancy events POSTed to a webhook, signed like Grip-Sig."""
