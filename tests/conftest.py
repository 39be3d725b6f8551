pytest_plugins = ["backends"]
