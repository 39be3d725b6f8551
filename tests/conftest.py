pytest_plugins = ["backends", "tiering_fixtures", "redis_server"]
