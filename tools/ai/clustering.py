def cluster_keywords(keywords, **kw):
    raise NotImplementedError
