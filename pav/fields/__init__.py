"""Neural fields of the avatar: input encodings and the networks that read them."""
