"""Local protocol fakes of vector stores that cannot run on a test machine.

They are fakes, not the real engines: each serves just enough of its store's wire
protocol for the real client library and the adapter tests, with brute-force search.
"""
