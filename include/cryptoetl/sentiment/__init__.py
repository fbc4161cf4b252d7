"""News sentiment with transformers classifiers: CryptoBERT for crypto articles, FinBERT for general
market news. ``model`` finds, identifies (revision) and runs the models; ``tiny`` builds small random
stand-ins for tests and the offline demo. The step is ``cryptoetl.loaders.sentiment.run_sentiment``;
see docs/SENTIMENT.md.

Importing this package is cheap: torch and transformers are imported only when a model is loaded.
"""
