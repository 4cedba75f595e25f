"""p8 plugin: HTTP long-polling (Grip-Hold: response, format http-response)."""
