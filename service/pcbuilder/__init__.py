"""PC-builder: a Flask app served by uWSGI behind NGINX, observable end to end."""
from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

from .urls import API_PREFIX, URL_PREFIX

if TYPE_CHECKING:
    from flask import Flask

def create_app(test_config: dict | None = None) -> Flask:
    # Flask is imported here, not at the top: the container health check
    # (pcbuilder.healthcheck, every 15 s) and ./stack import small modules of this
    # package and should not pay for loading Flask (~0.2 s of CPU).
    from flask import Flask

    from . import logging_config, settings

    conf = settings.from_env()  # a bad value stops the app here, naming it
    app = Flask(__name__, static_url_path=URL_PREFIX + "/static")
    data_dir = os.environ.get("DATA_DIR", "var/data")
    app.config.from_mapping(
        DATABASE=os.environ.get("DATABASE_PATH") or os.path.join(data_dir, "pcbuilder.sqlite3"),
        INSTANCE_NAME=os.environ.get("INSTANCE", socket.gethostname()),
        APP_LOG_FILE=os.environ.get("APP_LOG_FILE") or None,
        BROWSER_LOG_FILE=os.environ.get("BROWSER_LOG_FILE") or None,
        LOG_LEVEL=conf.log_level,
        # A query at least this slow is logged at WARNING whatever LOG_LEVEL says.
        DB_SLOW_MS=conf.db_slow_ms,
        # Detail on demand (pcbuilder.request_detail): which requests write their fine events.
        LOG_DETAIL=conf.log_detail,
        LOG_DETAIL_SLOW_MS=conf.log_detail_slow_ms,
        LOG_DETAIL_SAMPLE=conf.log_detail_sample,
        LOG_DETAIL_MAX_EVENTS=conf.log_detail_max_events,
        LOG_DETAIL_MAX_BYTES=conf.log_detail_max_bytes,
        LOKI_URL=conf.loki_url,
        STACK_ENV=conf.stack_env,
        # Bodies beyond this get a 413 before Flask reads them.
        MAX_CONTENT_LENGTH=int(os.environ.get("MAX_BODY_BYTES", 64 * 1024)),
    )
    if test_config:
        app.config.update(test_config)

    logging_config.configure_logging(
        app.config["INSTANCE_NAME"], app.config["APP_LOG_FILE"], app.config["LOG_LEVEL"],
        loki_url=app.config["LOKI_URL"], stack_env=app.config["STACK_ENV"],
        browser_log_file=app.config["BROWSER_LOG_FILE"], settings=conf,
    )

    from . import db, errors, request_log
    from .views import api, health, pages, timing

    request_log.init_app(app)
    errors.init_app(app)
    # Before any rule is added: ids beyond what int() or SQLite take then fail to match.
    app.url_map.converters["int"] = api.IdIntConverter
    db.init_app(app)
    app.register_blueprint(pages.bp, url_prefix=URL_PREFIX)
    app.register_blueprint(api.bp, url_prefix=API_PREFIX)
    app.register_blueprint(timing.bp, url_prefix=API_PREFIX)
    app.register_blueprint(health.bp, url_prefix=URL_PREFIX)
    return app
