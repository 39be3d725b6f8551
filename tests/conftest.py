pytest_plugins = ["backends", "tiering_fixtures"]
