"""Images: manifest parsing, the manifest cache, and an image's closure (what it needs and which object
version provides each piece); ``listing`` is what `regvault ls` shows.
"""
