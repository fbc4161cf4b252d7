-- The warehouse schema exactly as `python -m cryptoetl init-db` of release 0.1.0 created it on SQLite
-- (before migrations; dumped with sqlite_master). Frozen: tests load it to check that the
-- baseline revision creates the same schema and that `migrate` adopts such a warehouse.

CREATE TABLE crypto_news (
	article_id VARCHAR(64) NOT NULL,
	published_at DATETIME NOT NULL,
	source VARCHAR(64) NOT NULL,
	title TEXT NOT NULL,
	summary TEXT,
	url VARCHAR(1024) NOT NULL,
	category VARCHAR(16) NOT NULL,
	is_synthetic BOOLEAN NOT NULL,
	PRIMARY KEY (article_id)
);

CREATE TABLE crypto_news_mentions (
	article_id VARCHAR(64) NOT NULL,
	symbol VARCHAR(16) NOT NULL,
	PRIMARY KEY (article_id, symbol)
);

CREATE TABLE crypto_news_sightings (
	source VARCHAR(64) NOT NULL,
	article_id VARCHAR(64) NOT NULL,
	published_at DATETIME NOT NULL,
	title TEXT NOT NULL,
	summary TEXT,
	url VARCHAR(1024) NOT NULL,
	is_synthetic BOOLEAN NOT NULL,
	PRIMARY KEY (source, article_id)
);

CREATE TABLE crypto_onchain_data (
	symbol VARCHAR(16) NOT NULL,
	date DATE NOT NULL,
	data_source VARCHAR(48) NOT NULL,
	is_synthetic BOOLEAN NOT NULL,
	transaction_count FLOAT,
	active_addresses FLOAT,
	new_addresses FLOAT,
	transfer_volume_usd FLOAT,
	output_volume_native FLOAT,
	fees_native FLOAT,
	fees_usd FLOAT,
	miners_revenue_usd FLOAT,
	avg_gas_price_gwei FLOAT,
	hash_rate FLOAT,
	difficulty FLOAT,
	block_count FLOAT,
	avg_block_size_bytes FLOAT,
	gas_used FLOAT,
	network_utilization FLOAT,
	complete_at DATETIME NOT NULL,
	PRIMARY KEY (symbol, date)
);

CREATE TABLE crypto_sentiment_data (
	article_id VARCHAR(64) NOT NULL,
	model_id VARCHAR(128) NOT NULL,
	model_revision VARCHAR(64) NOT NULL,
	model_key VARCHAR(16) NOT NULL,
	published_at DATETIME NOT NULL,
	label VARCHAR(16) NOT NULL,
	score FLOAT NOT NULL,
	p_positive FLOAT NOT NULL,
	p_negative FLOAT NOT NULL,
	p_neutral FLOAT NOT NULL,
	text_sha256 VARCHAR(64) NOT NULL,
	is_synthetic BOOLEAN NOT NULL,
	PRIMARY KEY (article_id, model_id, model_revision)
);

CREATE TABLE macro_indicators (
	series_id VARCHAR(32) NOT NULL,
	observation_date DATE NOT NULL,
	realtime_start DATE NOT NULL,
	indicator_name VARCHAR(64) NOT NULL,
	value FLOAT,
	known_at DATETIME NOT NULL,
	known_at_rule VARCHAR(32) NOT NULL,
	frequency VARCHAR(16) NOT NULL,
	units VARCHAR(128) NOT NULL,
	source VARCHAR(32) NOT NULL,
	PRIMARY KEY (series_id, observation_date, realtime_start)
);

CREATE TABLE ml_features_materialized (
	symbol VARCHAR(16) NOT NULL,
	time DATETIME NOT NULL,
	price FLOAT NOT NULL,
	market_cap FLOAT,
	total_volume FLOAT,
	return_1h FLOAT,
	return_24h FLOAT,
	return_7d FLOAT,
	sma_20 FLOAT,
	sma_50 FLOAT,
	ema_12 FLOAT,
	ema_26 FLOAT,
	rsi_14 FLOAT,
	macd FLOAT,
	macd_signal FLOAT,
	macd_hist FLOAT,
	bb_upper FLOAT,
	bb_middle FLOAT,
	bb_lower FLOAT,
	bb_width FLOAT,
	macro_unemployment_rate FLOAT,
	macro_unemployment_rate_age_days FLOAT,
	macro_cpi_all_urban FLOAT,
	macro_cpi_all_urban_age_days FLOAT,
	macro_real_gdp_growth FLOAT,
	macro_real_gdp_growth_age_days FLOAT,
	macro_fed_funds_rate_monthly FLOAT,
	macro_fed_funds_rate_monthly_age_days FLOAT,
	macro_fed_funds_rate_daily FLOAT,
	macro_fed_funds_rate_daily_age_days FLOAT,
	macro_treasury_10y_yield FLOAT,
	macro_treasury_10y_yield_age_days FLOAT,
	macro_vix_close FLOAT,
	macro_vix_close_age_days FLOAT,
	macro_usd_broad_index FLOAT,
	macro_usd_broad_index_age_days FLOAT,
	macro_wti_crude_oil FLOAT,
	macro_wti_crude_oil_age_days FLOAT,
	macro_gold_import_price_index FLOAT,
	macro_gold_import_price_index_age_days FLOAT,
	onchain_transaction_count FLOAT,
	onchain_active_addresses FLOAT,
	onchain_new_addresses FLOAT,
	onchain_transfer_volume_usd FLOAT,
	onchain_output_volume_native FLOAT,
	onchain_fees_native FLOAT,
	onchain_fees_usd FLOAT,
	onchain_miners_revenue_usd FLOAT,
	onchain_avg_gas_price_gwei FLOAT,
	onchain_hash_rate FLOAT,
	onchain_difficulty FLOAT,
	onchain_block_count FLOAT,
	onchain_avg_block_size_bytes FLOAT,
	onchain_gas_used FLOAT,
	onchain_network_utilization FLOAT,
	onchain_age_days FLOAT,
	sent_cryptobert_sym_24h_count INTEGER NOT NULL,
	sent_cryptobert_sym_24h_mean FLOAT,
	sent_cryptobert_sym_7d_count INTEGER NOT NULL,
	sent_cryptobert_sym_7d_mean FLOAT,
	sent_cryptobert_all_24h_count INTEGER NOT NULL,
	sent_cryptobert_all_24h_mean FLOAT,
	sent_cryptobert_all_7d_count INTEGER NOT NULL,
	sent_cryptobert_all_7d_mean FLOAT,
	sent_finbert_sym_24h_count INTEGER NOT NULL,
	sent_finbert_sym_24h_mean FLOAT,
	sent_finbert_sym_7d_count INTEGER NOT NULL,
	sent_finbert_sym_7d_mean FLOAT,
	sent_finbert_all_24h_count INTEGER NOT NULL,
	sent_finbert_all_24h_mean FLOAT,
	sent_finbert_all_7d_count INTEGER NOT NULL,
	sent_finbert_all_7d_mean FLOAT,
	is_synthetic BOOLEAN NOT NULL,
	PRIMARY KEY (symbol, time)
);

CREATE TABLE price_data_real (
	symbol VARCHAR(16) NOT NULL,
	time DATETIME NOT NULL,
	price FLOAT NOT NULL,
	market_cap FLOAT,
	total_volume FLOAT,
	source VARCHAR(32) NOT NULL,
	PRIMARY KEY (symbol, time)
);

CREATE TABLE technical_indicators (
	symbol VARCHAR(16) NOT NULL,
	time DATETIME NOT NULL,
	close FLOAT NOT NULL,
	sma_20 FLOAT,
	sma_50 FLOAT,
	ema_12 FLOAT,
	ema_26 FLOAT,
	rsi_14 FLOAT,
	macd FLOAT,
	macd_signal FLOAT,
	macd_hist FLOAT,
	bb_upper FLOAT,
	bb_middle FLOAT,
	bb_lower FLOAT,
	bb_width FLOAT,
	return_1h FLOAT,
	return_24h FLOAT,
	return_7d FLOAT,
	PRIMARY KEY (symbol, time)
);

CREATE INDEX ix_crypto_news_mentions_symbol ON crypto_news_mentions (symbol);

CREATE INDEX ix_crypto_news_published_at ON crypto_news (published_at);

CREATE INDEX ix_crypto_news_sightings_article_id ON crypto_news_sightings (article_id);

CREATE INDEX ix_crypto_news_sightings_published_at ON crypto_news_sightings (published_at);

CREATE INDEX ix_crypto_sentiment_published_at ON crypto_sentiment_data (published_at);

CREATE INDEX ix_macro_indicators_known_at ON macro_indicators (known_at);

CREATE INDEX ix_macro_indicators_series_known ON macro_indicators (series_id, known_at);

CREATE INDEX ix_ml_features_time ON ml_features_materialized (time);

CREATE INDEX ix_price_data_real_time ON price_data_real (time);

CREATE INDEX ix_technical_indicators_time ON technical_indicators (time);

CREATE VIEW onchain_metrics AS SELECT symbol, date, data_source, is_synthetic, transaction_count, active_addresses, new_addresses, transfer_volume_usd, output_volume_native, fees_native, fees_usd, miners_revenue_usd, avg_gas_price_gwei, hash_rate, difficulty, block_count, avg_block_size_bytes, gas_used, network_utilization, complete_at AS available_at FROM crypto_onchain_data;

