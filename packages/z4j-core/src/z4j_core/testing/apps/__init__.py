"""Worker apps that the test-support rigs start engines with (run by module name)."""
