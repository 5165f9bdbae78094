"""The DMP's documents: the registry and repository, the XDS.b transactions (feed, search, retrieve, update)
and how a feed is judged (the IHE XDS kit with the DMP's own value sets)."""
