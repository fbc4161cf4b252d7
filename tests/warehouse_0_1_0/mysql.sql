-- The warehouse schema exactly as `python -m cryptoetl init-db` of release 0.1.0 created it on MariaDB 10.11 (database CHARACTER SET utf8mb4)
-- (before migrations; dumped with SHOW CREATE TABLE / VIEW). Frozen: tests load it to check that the
-- baseline revision creates the same schema and that `migrate` adopts such a warehouse.

CREATE TABLE `crypto_news` (
  `article_id` varchar(64) NOT NULL COMMENT 'sha256 of the canonical URL',
  `published_at` datetime NOT NULL COMMENT 'UTC, as reported by `source`',
  `source` varchar(64) NOT NULL COMMENT 'the sighting stored: guardian > rss:<feed> > cryptopanic (fixed priority)',
  `title` text NOT NULL,
  `summary` text DEFAULT NULL COMMENT 'plain text; NULL when the source gives none',
  `url` varchar(1024) NOT NULL COMMENT 'canonical URL (no tracking parameters)',
  `category` varchar(16) NOT NULL COMMENT 'crypto | general (from the text)',
  `is_synthetic` tinyint(1) NOT NULL COMMENT 'true when served by the offline sandbox',
  PRIMARY KEY (`article_id`),
  KEY `ix_crypto_news_published_at` (`published_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='News articles, stored once whatever source or run delivered them; rebuilt from crypto_news_sightings';

CREATE TABLE `crypto_news_mentions` (
  `article_id` varchar(64) NOT NULL,
  `symbol` varchar(16) NOT NULL,
  PRIMARY KEY (`article_id`,`symbol`),
  KEY `ix_crypto_news_mentions_symbol` (`symbol`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Which configured symbols each crypto_news article mentions (title and summary)';

CREATE TABLE `crypto_news_sightings` (
  `source` varchar(64) NOT NULL COMMENT 'guardian | cryptopanic | rss:<feed>',
  `article_id` varchar(64) NOT NULL COMMENT 'sha256 of the canonical URL',
  `published_at` datetime NOT NULL COMMENT 'UTC, as reported by this source',
  `title` text NOT NULL,
  `summary` text DEFAULT NULL,
  `url` varchar(1024) NOT NULL COMMENT 'canonical URL',
  `is_synthetic` tinyint(1) NOT NULL,
  PRIMARY KEY (`source`,`article_id`),
  KEY `ix_crypto_news_sightings_article_id` (`article_id`),
  KEY `ix_crypto_news_sightings_published_at` (`published_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Each source''s copy of each article; a source''s run replaces its own rows for its interval';

CREATE TABLE `crypto_onchain_data` (
  `symbol` varchar(16) NOT NULL,
  `date` date NOT NULL COMMENT 'UTC day the totals describe',
  `data_source` varchar(48) NOT NULL COMMENT 'blockchain.info | etherscan-pro | etherscan-free, + ''-sandbox-synthetic'' for sandbox data',
  `is_synthetic` tinyint(1) NOT NULL COMMENT 'true when loaded from the offline sandbox',
  `transaction_count` double DEFAULT NULL COMMENT 'transactions confirmed in the day (BTC n-transactions, ETH dailytx)',
  `active_addresses` double DEFAULT NULL COMMENT 'BTC: distinct addresses used in the day (n-unique-addresses); ETH: NULL',
  `new_addresses` double DEFAULT NULL COMMENT 'ETH: addresses first seen in the day (dailynewaddress); BTC: NULL',
  `transfer_volume_usd` double DEFAULT NULL COMMENT 'BTC: estimated transaction volume, USD; ETH: NULL',
  `output_volume_native` double DEFAULT NULL COMMENT 'BTC: total value of transaction outputs, BTC; ETH: NULL',
  `fees_native` double DEFAULT NULL COMMENT 'total transaction fees of the day in the chain''s coin: BTC or ETH',
  `fees_usd` double DEFAULT NULL COMMENT 'BTC: total transaction fees, USD; ETH: NULL (Etherscan reports ETH only)',
  `miners_revenue_usd` double DEFAULT NULL COMMENT 'BTC: block rewards + fees, USD; ETH: NULL',
  `avg_gas_price_gwei` double DEFAULT NULL COMMENT 'ETH: average gas price, gwei; BTC: NULL',
  `hash_rate` double DEFAULT NULL COMMENT 'BTC: TH/s; ETH: NULL (proof of stake)',
  `difficulty` double DEFAULT NULL COMMENT 'BTC: mining difficulty, unitless; ETH: NULL (proof of stake)',
  `block_count` double DEFAULT NULL COMMENT 'ETH: blocks in the day; BTC: NULL',
  `avg_block_size_bytes` double DEFAULT NULL COMMENT 'average block size, bytes (blockchain.info MB x 1e6)',
  `gas_used` double DEFAULT NULL COMMENT 'ETH: gas units used in the day; BTC: NULL',
  `network_utilization` double DEFAULT NULL COMMENT 'ETH: average gas used / gas limit, 0-1; BTC: NULL',
  `complete_at` datetime NOT NULL COMMENT 'UTC end of the day (next midnight): when the totals are final and may be used',
  PRIMARY KEY (`symbol`,`date`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Daily on-chain totals, one row per coin per completed UTC day';

CREATE TABLE `crypto_sentiment_data` (
  `article_id` varchar(64) NOT NULL,
  `model_id` varchar(128) NOT NULL,
  `model_revision` varchar(64) NOT NULL,
  `model_key` varchar(16) NOT NULL COMMENT 'cryptobert | finbert: the model''s role, whatever model_id is configured for it',
  `published_at` datetime NOT NULL COMMENT 'copied from crypto_news for window joins',
  `label` varchar(16) NOT NULL COMMENT 'argmax, normalised: positive | negative | neutral',
  `score` double NOT NULL COMMENT 'P(positive|bullish) - P(negative|bearish), in [-1, 1]',
  `p_positive` double NOT NULL,
  `p_negative` double NOT NULL,
  `p_neutral` double NOT NULL,
  `text_sha256` varchar(64) NOT NULL COMMENT 'sha256 of the scored text (title + ''. '' + summary): a changed text is scored again',
  `is_synthetic` tinyint(1) NOT NULL COMMENT 'true when the article (sandbox) or the model (tiny demo model) is synthetic',
  PRIMARY KEY (`article_id`,`model_id`,`model_revision`),
  KEY `ix_crypto_sentiment_published_at` (`published_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='One score per article per model revision (loaders/sentiment.py, docs/SENTIMENT.md)';

CREATE TABLE `macro_indicators` (
  `series_id` varchar(32) NOT NULL COMMENT 'FRED series id, e.g. UNRATE',
  `observation_date` date NOT NULL COMMENT 'the period the value describes (its first day)',
  `realtime_start` date NOT NULL COMMENT 'rule alfred: ALFRED vintage date; rule lag: estimated FRED publication date',
  `indicator_name` varchar(64) NOT NULL COMMENT 'readable name, from cryptoetl/macro_series.json',
  `value` double DEFAULT NULL COMMENT 'NULL when FRED reports ''.'' (no value)',
  `known_at` datetime NOT NULL COMMENT 'UTC time from which the value may be used: realtime_start + delay (see known_at_rule)',
  `known_at_rule` varchar(32) NOT NULL COMMENT 'e.g. alfred+30h, lag+1bd+30h',
  `frequency` varchar(16) NOT NULL COMMENT 'daily | weekly | monthly | quarterly',
  `units` varchar(128) NOT NULL COMMENT 'FRED units, e.g. ''Index 2000=100, Not Seasonally Adjusted''',
  `source` varchar(32) NOT NULL COMMENT 'fred | fred-sandbox-synthetic',
  PRIMARY KEY (`series_id`,`observation_date`,`realtime_start`),
  KEY `ix_macro_indicators_known_at` (`known_at`),
  KEY `ix_macro_indicators_series_known` (`series_id`,`known_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='FRED/ALFRED observations with every vintage and when it became known, for point-in-time joins';

CREATE TABLE `ml_features_materialized` (
  `symbol` varchar(16) NOT NULL,
  `time` datetime NOT NULL COMMENT 'hour start, UTC',
  `price` double NOT NULL COMMENT 'USD; a row exists only for hours with a price',
  `market_cap` double DEFAULT NULL,
  `total_volume` double DEFAULT NULL,
  `return_1h` double DEFAULT NULL COMMENT 'price / price 1h earlier - 1; NULL if that hour has no price',
  `return_24h` double DEFAULT NULL COMMENT 'price / price 24h earlier - 1; NULL if that hour has no price',
  `return_7d` double DEFAULT NULL COMMENT 'price / price 168h earlier - 1; NULL if that hour has no price',
  `sma_20` double DEFAULT NULL,
  `sma_50` double DEFAULT NULL,
  `ema_12` double DEFAULT NULL,
  `ema_26` double DEFAULT NULL,
  `rsi_14` double DEFAULT NULL,
  `macd` double DEFAULT NULL,
  `macd_signal` double DEFAULT NULL,
  `macd_hist` double DEFAULT NULL,
  `bb_upper` double DEFAULT NULL,
  `bb_middle` double DEFAULT NULL,
  `bb_lower` double DEFAULT NULL,
  `bb_width` double DEFAULT NULL,
  `macro_unemployment_rate` double DEFAULT NULL COMMENT 'FRED UNRATE: latest value known at `time` (known_at <= time)',
  `macro_unemployment_rate_age_days` double DEFAULT NULL COMMENT 'days from the start of the period the UNRATE value describes to `time`',
  `macro_cpi_all_urban` double DEFAULT NULL COMMENT 'FRED CPIAUCSL: latest value known at `time` (known_at <= time)',
  `macro_cpi_all_urban_age_days` double DEFAULT NULL COMMENT 'days from the start of the period the CPIAUCSL value describes to `time`',
  `macro_real_gdp_growth` double DEFAULT NULL COMMENT 'FRED A191RL1Q225SBEA: latest value known at `time` (known_at <= time)',
  `macro_real_gdp_growth_age_days` double DEFAULT NULL COMMENT 'days from the start of the period the A191RL1Q225SBEA value describes to `time`',
  `macro_fed_funds_rate_monthly` double DEFAULT NULL COMMENT 'FRED FEDFUNDS: latest value known at `time` (known_at <= time)',
  `macro_fed_funds_rate_monthly_age_days` double DEFAULT NULL COMMENT 'days from the start of the period the FEDFUNDS value describes to `time`',
  `macro_fed_funds_rate_daily` double DEFAULT NULL COMMENT 'FRED DFF: latest value known at `time` (known_at <= time)',
  `macro_fed_funds_rate_daily_age_days` double DEFAULT NULL COMMENT 'days from the start of the period the DFF value describes to `time`',
  `macro_treasury_10y_yield` double DEFAULT NULL COMMENT 'FRED DGS10: latest value known at `time` (known_at <= time)',
  `macro_treasury_10y_yield_age_days` double DEFAULT NULL COMMENT 'days from the start of the period the DGS10 value describes to `time`',
  `macro_vix_close` double DEFAULT NULL COMMENT 'FRED VIXCLS: latest value known at `time` (known_at <= time)',
  `macro_vix_close_age_days` double DEFAULT NULL COMMENT 'days from the start of the period the VIXCLS value describes to `time`',
  `macro_usd_broad_index` double DEFAULT NULL COMMENT 'FRED DTWEXBGS: latest value known at `time` (known_at <= time)',
  `macro_usd_broad_index_age_days` double DEFAULT NULL COMMENT 'days from the start of the period the DTWEXBGS value describes to `time`',
  `macro_wti_crude_oil` double DEFAULT NULL COMMENT 'FRED DCOILWTICO: latest value known at `time` (known_at <= time)',
  `macro_wti_crude_oil_age_days` double DEFAULT NULL COMMENT 'days from the start of the period the DCOILWTICO value describes to `time`',
  `macro_gold_import_price_index` double DEFAULT NULL COMMENT 'FRED IR14270: latest value known at `time` (known_at <= time)',
  `macro_gold_import_price_index_age_days` double DEFAULT NULL COMMENT 'days from the start of the period the IR14270 value describes to `time`',
  `onchain_transaction_count` double DEFAULT NULL COMMENT 'last completed day: transactions confirmed in the day (BTC n-transactions, ETH dailytx)',
  `onchain_active_addresses` double DEFAULT NULL COMMENT 'last completed day: BTC: distinct addresses used in the day (n-unique-addresses); ETH: NULL',
  `onchain_new_addresses` double DEFAULT NULL COMMENT 'last completed day: ETH: addresses first seen in the day (dailynewaddress); BTC: NULL',
  `onchain_transfer_volume_usd` double DEFAULT NULL COMMENT 'last completed day: BTC: estimated transaction volume, USD; ETH: NULL',
  `onchain_output_volume_native` double DEFAULT NULL COMMENT 'last completed day: BTC: total value of transaction outputs, BTC; ETH: NULL',
  `onchain_fees_native` double DEFAULT NULL COMMENT 'last completed day: total transaction fees of the day in the chain''s coin: BTC or ETH',
  `onchain_fees_usd` double DEFAULT NULL COMMENT 'last completed day: BTC: total transaction fees, USD; ETH: NULL (Etherscan reports ETH only)',
  `onchain_miners_revenue_usd` double DEFAULT NULL COMMENT 'last completed day: BTC: block rewards + fees, USD; ETH: NULL',
  `onchain_avg_gas_price_gwei` double DEFAULT NULL COMMENT 'last completed day: ETH: average gas price, gwei; BTC: NULL',
  `onchain_hash_rate` double DEFAULT NULL COMMENT 'last completed day: BTC: TH/s; ETH: NULL (proof of stake)',
  `onchain_difficulty` double DEFAULT NULL COMMENT 'last completed day: BTC: mining difficulty, unitless; ETH: NULL (proof of stake)',
  `onchain_block_count` double DEFAULT NULL COMMENT 'last completed day: ETH: blocks in the day; BTC: NULL',
  `onchain_avg_block_size_bytes` double DEFAULT NULL COMMENT 'last completed day: average block size, bytes (blockchain.info MB x 1e6)',
  `onchain_gas_used` double DEFAULT NULL COMMENT 'last completed day: ETH: gas units used in the day; BTC: NULL',
  `onchain_network_utilization` double DEFAULT NULL COMMENT 'last completed day: ETH: average gas used / gas limit, 0-1; BTC: NULL',
  `onchain_age_days` double DEFAULT NULL COMMENT 'days from the start of the on-chain day used to `time`; NULL when no day completed in the last 7 days',
  `sent_cryptobert_sym_24h_count` int(11) NOT NULL COMMENT 'number of cryptobert articles that mention the row''s symbol, published in the 24h up to `time` (0 when none)',
  `sent_cryptobert_sym_24h_mean` double DEFAULT NULL COMMENT 'mean score of cryptobert articles that mention the row''s symbol, published in the 24h up to `time`; NULL when the count is 0',
  `sent_cryptobert_sym_7d_count` int(11) NOT NULL COMMENT 'number of cryptobert articles that mention the row''s symbol, published in the 7d up to `time` (0 when none)',
  `sent_cryptobert_sym_7d_mean` double DEFAULT NULL COMMENT 'mean score of cryptobert articles that mention the row''s symbol, published in the 7d up to `time`; NULL when the count is 0',
  `sent_cryptobert_all_24h_count` int(11) NOT NULL COMMENT 'number of cryptobert all articles the model scores, published in the 24h up to `time` (0 when none)',
  `sent_cryptobert_all_24h_mean` double DEFAULT NULL COMMENT 'mean score of cryptobert all articles the model scores, published in the 24h up to `time`; NULL when the count is 0',
  `sent_cryptobert_all_7d_count` int(11) NOT NULL COMMENT 'number of cryptobert all articles the model scores, published in the 7d up to `time` (0 when none)',
  `sent_cryptobert_all_7d_mean` double DEFAULT NULL COMMENT 'mean score of cryptobert all articles the model scores, published in the 7d up to `time`; NULL when the count is 0',
  `sent_finbert_sym_24h_count` int(11) NOT NULL COMMENT 'number of finbert articles that mention the row''s symbol, published in the 24h up to `time` (0 when none)',
  `sent_finbert_sym_24h_mean` double DEFAULT NULL COMMENT 'mean score of finbert articles that mention the row''s symbol, published in the 24h up to `time`; NULL when the count is 0',
  `sent_finbert_sym_7d_count` int(11) NOT NULL COMMENT 'number of finbert articles that mention the row''s symbol, published in the 7d up to `time` (0 when none)',
  `sent_finbert_sym_7d_mean` double DEFAULT NULL COMMENT 'mean score of finbert articles that mention the row''s symbol, published in the 7d up to `time`; NULL when the count is 0',
  `sent_finbert_all_24h_count` int(11) NOT NULL COMMENT 'number of finbert all articles the model scores, published in the 24h up to `time` (0 when none)',
  `sent_finbert_all_24h_mean` double DEFAULT NULL COMMENT 'mean score of finbert all articles the model scores, published in the 24h up to `time`; NULL when the count is 0',
  `sent_finbert_all_7d_count` int(11) NOT NULL COMMENT 'number of finbert all articles the model scores, published in the 7d up to `time` (0 when none)',
  `sent_finbert_all_7d_mean` double DEFAULT NULL COMMENT 'mean score of finbert all articles the model scores, published in the 7d up to `time`; NULL when the count is 0',
  `is_synthetic` tinyint(1) NOT NULL COMMENT 'true when built from sandbox data',
  PRIMARY KEY (`symbol`,`time`),
  KEY `ix_ml_features_time` (`time`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='One row per symbol per hour; every value knowable at `time`';

CREATE TABLE `price_data_real` (
  `symbol` varchar(16) NOT NULL,
  `time` datetime NOT NULL COMMENT 'hour start, UTC',
  `price` double NOT NULL COMMENT 'USD, first CoinGecko point in the hour',
  `market_cap` double DEFAULT NULL COMMENT 'USD',
  `total_volume` double DEFAULT NULL COMMENT 'USD, trailing 24h as reported by CoinGecko',
  `source` varchar(32) NOT NULL COMMENT 'coingecko | sandbox-synthetic',
  PRIMARY KEY (`symbol`,`time`),
  KEY `ix_price_data_real_time` (`time`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Hourly CoinGecko market data, one row per symbol per hour';

CREATE TABLE `technical_indicators` (
  `symbol` varchar(16) NOT NULL,
  `time` datetime NOT NULL COMMENT 'hour start, UTC',
  `close` double NOT NULL COMMENT 'the price the indicators are computed on',
  `sma_20` double DEFAULT NULL,
  `sma_50` double DEFAULT NULL,
  `ema_12` double DEFAULT NULL,
  `ema_26` double DEFAULT NULL,
  `rsi_14` double DEFAULT NULL,
  `macd` double DEFAULT NULL,
  `macd_signal` double DEFAULT NULL,
  `macd_hist` double DEFAULT NULL,
  `bb_upper` double DEFAULT NULL,
  `bb_middle` double DEFAULT NULL,
  `bb_lower` double DEFAULT NULL,
  `bb_width` double DEFAULT NULL,
  `return_1h` double DEFAULT NULL COMMENT 'close / close 1h earlier - 1; NULL if that hour has no price',
  `return_24h` double DEFAULT NULL COMMENT 'close / close 24h earlier - 1; NULL if that hour has no price',
  `return_7d` double DEFAULT NULL COMMENT 'close / close 168h earlier - 1; NULL if that hour has no price',
  PRIMARY KEY (`symbol`,`time`),
  KEY `ix_technical_indicators_time` (`time`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci COMMENT='Hourly indicators from the `ta` library; NULL until a window has enough bars';

CREATE VIEW `onchain_metrics` AS select `crypto_onchain_data`.`symbol` AS `symbol`,`crypto_onchain_data`.`date` AS `date`,`crypto_onchain_data`.`data_source` AS `data_source`,`crypto_onchain_data`.`is_synthetic` AS `is_synthetic`,`crypto_onchain_data`.`transaction_count` AS `transaction_count`,`crypto_onchain_data`.`active_addresses` AS `active_addresses`,`crypto_onchain_data`.`new_addresses` AS `new_addresses`,`crypto_onchain_data`.`transfer_volume_usd` AS `transfer_volume_usd`,`crypto_onchain_data`.`output_volume_native` AS `output_volume_native`,`crypto_onchain_data`.`fees_native` AS `fees_native`,`crypto_onchain_data`.`fees_usd` AS `fees_usd`,`crypto_onchain_data`.`miners_revenue_usd` AS `miners_revenue_usd`,`crypto_onchain_data`.`avg_gas_price_gwei` AS `avg_gas_price_gwei`,`crypto_onchain_data`.`hash_rate` AS `hash_rate`,`crypto_onchain_data`.`difficulty` AS `difficulty`,`crypto_onchain_data`.`block_count` AS `block_count`,`crypto_onchain_data`.`avg_block_size_bytes` AS `avg_block_size_bytes`,`crypto_onchain_data`.`gas_used` AS `gas_used`,`crypto_onchain_data`.`network_utilization` AS `network_utilization`,`crypto_onchain_data`.`complete_at` AS `available_at` from `crypto_onchain_data`;
