"""The test suite, laid out as the occam_plugin package (tests/test_<name>/
for occam_plugin/<name>/); what the modules share is in tests/helpers.py."""
