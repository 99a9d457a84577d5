"""The Textual app. The only part of gendiff that knows about widgets."""
