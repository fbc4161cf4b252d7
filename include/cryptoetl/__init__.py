"""cryptoetl: an Airflow 3 batch ETL for crypto-market ML features."""

__version__ = "0.2.0"
