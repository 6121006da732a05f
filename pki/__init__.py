"""The shared base every layer and the client use; it imports nothing of ours."""
