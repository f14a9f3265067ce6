"""Tests for devcrew_core.config.load_settings: layers, files, stores, errors, secrets.

Every call passes ``environ=`` explicitly (and HOME is pointed at a temporary
directory) so the developer's real environment and ~/.devcrew never leak in.
The passwords below are made-up test values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from devcrew_core.config import Settings, load_settings, mask_url
from devcrew_core.errors import ConfigError, UsageError

SECRET = "s3cr3t-Pa55word"


@pytest.fixture()
def fake_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary user home; HOME points at it in os.environ too, as a safety net."""
    home = tmp_path / "userhome"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture()
def devcrew_home(tmp_path: Path) -> Path:
    home = tmp_path / "dchome"
    home.mkdir()
    return home


def env_for(devcrew_home: Path, **variables: str) -> dict[str, str]:
    return {"DEVCREW_HOME": str(devcrew_home), **variables}


def write_config(devcrew_home: Path, text: str) -> Path:
    path = devcrew_home / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def default_db(devcrew_home: Path) -> str:
    return f"sqlite:///{devcrew_home / 'devcrew.db'}"


# --------------------------------------------------------------------------- defaults


def test_defaults_without_file_or_environment(devcrew_home: Path) -> None:
    settings = load_settings(environ=env_for(devcrew_home))
    assert settings.home == devcrew_home
    assert settings.config_file is None
    assert settings.log_level == "INFO"
    assert settings.agent_ttl_seconds == 300
    assert settings.agent_heartbeat_interval == 60
    assert settings.task_timeout_default == 3600
    assert settings.workflow_timeout_default == 7200
    assert settings.default_cpu_cores == 2
    assert settings.default_memory_mb == 2048
    assert settings.default_max_concurrent_tasks == 3
    assert settings.redis_db == 0
    assert settings.postgres_port == 5432
    assert settings.postgres_db == "multi_agent_platform"
    assert settings.executor == "local"
    assert settings.celery_task_serializer == "json"
    assert settings.sources["log_level"] == "default"
    assert settings.sources["home"] == "env:DEVCREW_HOME"
    assert settings.database_path == devcrew_home / "devcrew.db"


def test_every_user_setting_has_a_source(devcrew_home: Path) -> None:
    settings = load_settings(environ=env_for(devcrew_home))
    expected = set(Settings.model_fields) - {"sources", "config_file"}
    assert set(settings.sources) == expected


# --------------------------------------------------------------------------- precedence


@pytest.mark.parametrize(
    ("name", "in_file", "from_file", "env_var", "in_env", "from_env", "argument"),
    [
        ("log_level", "WARNING", "WARNING", "DEVCREW_LOG_LEVEL", "ERROR", "ERROR", "DEBUG"),
        ("agent_ttl_seconds", "11", 11.0, "DEVCREW_AGENT_TTL_SECONDS", "22", 22.0, 33.0),
        ("redis_key_prefix", "fromfile", "fromfile", "DEVCREW_REDIS_KEY_PREFIX", "fromenv",
         "fromenv", "fromarg"),
        ("postgres_port", "5001", 5001, "POSTGRES_PORT", "5002", 5002, 5003),
        ("default_max_concurrent_tasks", "4", 4, "DEVCREW_DEFAULT_MAX_CONCURRENT_TASKS", "5",
         5, 6),
        ("executor", "celery", "celery", "DEVCREW_EXECUTOR", "prefect", "prefect", "thing"),
    ],
)
def test_precedence_default_file_env_argument(
    devcrew_home: Path,
    name: str,
    in_file: str,
    from_file: Any,
    env_var: str,
    in_env: str,
    from_env: Any,
    argument: Any,
) -> None:
    default = Settings.model_fields[name].default
    assert len({default, from_file, from_env, argument}) == 4  # the test can tell them apart
    plain = load_settings(environ=env_for(devcrew_home))
    assert getattr(plain, name) == default
    assert plain.sources[name] == "default"

    write_config(devcrew_home, f"{name}: {in_file}\n")
    file_layer = load_settings(environ=env_for(devcrew_home))
    assert getattr(file_layer, name) == from_file
    assert file_layer.sources[name] == "file"

    environ = env_for(devcrew_home, **{env_var: in_env})
    env_layer = load_settings(environ=environ)
    assert getattr(env_layer, name) == from_env
    assert env_layer.sources[name] == f"env:{env_var}"

    arg_layer = load_settings(environ=environ, **{name: argument})
    assert getattr(arg_layer, name) == argument
    assert arg_layer.sources[name] == "argument"


def test_layers_combine_per_setting(devcrew_home: Path) -> None:
    write_config(devcrew_home, "log_level: WARNING\nagent_ttl_seconds: 10\nexecutor: celery\n")
    settings = load_settings(
        environ=env_for(devcrew_home, DEVCREW_AGENT_TTL_SECONDS="20"), executor="prefect"
    )
    assert (settings.log_level, settings.sources["log_level"]) == ("WARNING", "file")
    assert settings.agent_ttl_seconds == 20
    assert settings.sources["agent_ttl_seconds"] == "env:DEVCREW_AGENT_TTL_SECONDS"
    assert (settings.executor, settings.sources["executor"]) == ("prefect", "argument")
    assert settings.sources["scorer"] == "default"


def test_none_argument_is_ignored(devcrew_home: Path) -> None:
    settings = load_settings(
        environ=env_for(devcrew_home, DEVCREW_LOG_LEVEL="ERROR"), log_level=None
    )
    assert settings.log_level == "ERROR"
    assert settings.sources["log_level"] == "env:DEVCREW_LOG_LEVEL"


def test_empty_environment_value_is_ignored(devcrew_home: Path) -> None:
    write_config(devcrew_home, "log_level: WARNING\n")
    settings = load_settings(environ=env_for(devcrew_home, DEVCREW_LOG_LEVEL=""))
    assert settings.log_level == "WARNING"
    assert settings.sources["log_level"] == "file"


def test_spec_env_names_and_devcrew_prefixed_names(devcrew_home: Path) -> None:
    settings = load_settings(
        environ=env_for(
            devcrew_home,
            REDIS_DB="3",
            POSTGRES_HOST="db.example",
            POSTGRES_PORT="6543",
            POSTGRES_DB="audit",
            POSTGRES_USER="orchestrator",
            POSTGRES_PASSWORD=SECRET,
        )
    )
    assert settings.redis_db == 3
    assert settings.postgres_host == "db.example"
    assert settings.postgres_port == 6543
    assert settings.postgres_db == "audit"
    assert settings.postgres_user == "orchestrator"
    assert isinstance(settings.postgres_password, SecretStr)
    assert settings.postgres_password.get_secret_value() == SECRET
    assert settings.sources["postgres_port"] == "env:POSTGRES_PORT"
    # The DEVCREW_ name of a setting wins over the spec's name when both are set.
    both = load_settings(environ=env_for(devcrew_home, REDIS_DB="3", DEVCREW_REDIS_DB="4"))
    assert both.redis_db == 4
    assert both.sources["redis_db"] == "env:DEVCREW_REDIS_DB"


def test_unknown_argument_is_a_config_error(devcrew_home: Path) -> None:
    with pytest.raises(ConfigError, match="log_levl"):
        load_settings(environ=env_for(devcrew_home), log_levl="DEBUG")


# --------------------------------------------------------------------------- home and file


def test_devcrew_home_defaults_to_dot_devcrew_in_home(fake_home: Path) -> None:
    settings = load_settings(environ={"HOME": str(fake_home)})
    assert settings.home == fake_home / ".devcrew"
    assert settings.sources["home"] == "default"
    assert settings.state_url == f"sqlite:///{fake_home / '.devcrew' / 'devcrew.db'}"


def test_environ_home_decides_tilde_expansion(tmp_path: Path, fake_home: Path) -> None:
    # HOME in the given environ, not the process's HOME, decides where ~ points.
    other = tmp_path / "other-user"
    (other / ".devcrew").mkdir(parents=True)
    (other / ".devcrew" / "config.yaml").write_text("log_level: ERROR\n")
    settings = load_settings(environ={"HOME": str(other)})
    assert settings.home == other / ".devcrew"
    assert settings.config_file == other / ".devcrew" / "config.yaml"
    assert settings.log_level == "ERROR"


def test_config_file_found_in_default_home(fake_home: Path) -> None:
    (fake_home / ".devcrew").mkdir()
    path = fake_home / ".devcrew" / "config.yaml"
    path.write_text("agent_ttl_seconds: 42\n")
    settings = load_settings(environ={"HOME": str(fake_home)})
    assert settings.agent_ttl_seconds == 42
    assert settings.config_file == path


def test_config_file_found_in_devcrew_home(devcrew_home: Path) -> None:
    path = write_config(devcrew_home, "redis_key_prefix: team-a\n")
    settings = load_settings(environ=env_for(devcrew_home))
    assert settings.redis_key_prefix == "team-a"
    assert settings.config_file == path
    assert settings.sources["redis_key_prefix"] == "file"


def test_devcrew_home_with_tilde(fake_home: Path) -> None:
    settings = load_settings(environ={"HOME": str(fake_home), "DEVCREW_HOME": "~/crew"})
    assert settings.home == fake_home / "crew"


def test_home_argument_locates_the_config_file(devcrew_home: Path, tmp_path: Path) -> None:
    write_config(devcrew_home, "log_level: ERROR\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    settings = load_settings(environ={"DEVCREW_HOME": str(elsewhere)}, home=devcrew_home)
    assert settings.home == devcrew_home
    assert settings.log_level == "ERROR"


def test_devcrew_config_names_the_file(devcrew_home: Path, tmp_path: Path) -> None:
    write_config(devcrew_home, "log_level: ERROR\n")
    other = tmp_path / "custom.yaml"
    other.write_text("log_level: DEBUG\n")
    settings = load_settings(environ=env_for(devcrew_home, DEVCREW_CONFIG=str(other)))
    assert settings.log_level == "DEBUG"
    assert settings.config_file == other


def test_devcrew_config_with_tilde_uses_environ_home(fake_home: Path, tmp_path: Path) -> None:
    other_home = tmp_path / "h2"
    other_home.mkdir()
    (other_home / "c.yaml").write_text("executor: celery\n")
    settings = load_settings(environ={"HOME": str(other_home), "DEVCREW_CONFIG": "~/c.yaml"})
    assert settings.executor == "celery"


def test_config_file_argument_wins_over_devcrew_config(devcrew_home: Path, tmp_path: Path) -> None:
    a = tmp_path / "a.yaml"
    a.write_text("executor: celery\n")
    b = tmp_path / "b.yaml"
    b.write_text("executor: prefect\n")
    settings = load_settings(config_file=b, environ=env_for(devcrew_home, DEVCREW_CONFIG=str(a)))
    assert settings.executor == "prefect"
    assert settings.config_file == b


def test_missing_devcrew_config_file_is_an_error(devcrew_home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "config.yaml"
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env_for(devcrew_home, DEVCREW_CONFIG=str(missing)))
    assert str(missing) in str(info.value)


def test_missing_config_file_argument_is_an_error(devcrew_home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match=r"absent\.yaml"):
        load_settings(config_file=missing, environ=env_for(devcrew_home))


def test_missing_default_config_file_is_fine(devcrew_home: Path) -> None:
    assert not (devcrew_home / "config.yaml").exists()
    assert load_settings(environ=env_for(devcrew_home)).config_file is None


def test_empty_config_file_means_defaults(devcrew_home: Path) -> None:
    path = write_config(devcrew_home, "# nothing here\n")
    settings = load_settings(environ=env_for(devcrew_home))
    assert settings.config_file == path
    assert settings.log_level == "INFO"


def test_spec_config_file_loads(devcrew_home: Path) -> None:
    """The spec's "Configuration File Format" example, verbatim."""
    write_config(
        devcrew_home,
        """\
# Redis State Store
redis_url: redis://localhost:6379
redis_db: 0
redis_password: null  # Optional

# PostgreSQL Audit Database (optional)
postgres_host: localhost
postgres_port: 5432
postgres_db: multi_agent_platform
postgres_user: orchestrator
postgres_password: your_secure_password

# Platform Settings
agent_ttl_seconds: 300  # Agent registration TTL
agent_heartbeat_interval: 60  # Heartbeat frequency
task_timeout_default: 3600  # Default task timeout
workflow_timeout_default: 7200  # Default workflow timeout

# Resource Limits
default_cpu_cores: 2
default_memory_mb: 2048
default_max_concurrent_tasks: 3

# Celery Configuration (for hub-spoke)
celery_broker_url: redis://localhost:6379/1
celery_result_backend: redis://localhost:6379/2
celery_task_serializer: json
celery_result_serializer: json
""",
    )
    settings = load_settings(environ=env_for(devcrew_home))
    assert settings.redis_password is None
    assert settings.state_url == "redis://localhost:6379"
    assert settings.audit_url == (
        "postgresql://orchestrator:your_secure_password@localhost:5432/multi_agent_platform"
    )
    assert settings.celery_broker_url == "redis://localhost:6379/1"
    assert settings.sources["postgres_user"] == "file"


def test_config_is_read_at_call_time_not_import(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    (second / "config.yaml").write_text("log_level: ERROR\n")
    a = load_settings(environ={"DEVCREW_HOME": str(first)})
    b = load_settings(environ={"DEVCREW_HOME": str(second)})
    assert (a.home, a.log_level) == (first, "INFO")
    assert (b.home, b.log_level) == (second, "ERROR")
    # A file written after the first call is seen by the next call.
    (first / "config.yaml").write_text("log_level: DEBUG\n")
    assert load_settings(environ={"DEVCREW_HOME": str(first)}).log_level == "DEBUG"


def test_os_environ_is_used_when_environ_is_not_given(
    devcrew_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DEVCREW_CONFIG", "DEVCREW_LOG_LEVEL", "REDIS_URL", "POSTGRES_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DEVCREW_HOME", str(devcrew_home))
    monkeypatch.setenv("DEVCREW_AGENT_TTL_SECONDS", "77")
    settings = load_settings()
    assert settings.home == devcrew_home
    assert settings.agent_ttl_seconds == 77


# --------------------------------------------------------------------------- store URLs


def test_state_and_audit_default_to_sqlite_in_home(devcrew_home: Path) -> None:
    settings = load_settings(environ=env_for(devcrew_home))
    assert settings.state_url == default_db(devcrew_home)
    assert settings.audit_url == default_db(devcrew_home)
    assert settings.sources["state_url"] == "default"
    assert settings.sources["audit_url"] == "default"


def test_redis_url_becomes_state_url(devcrew_home: Path) -> None:
    settings = load_settings(environ=env_for(devcrew_home, REDIS_URL="redis://cache:6379"))
    assert settings.state_url == "redis://cache:6379"
    assert settings.sources["state_url"] == "derived from redis_url (env:REDIS_URL)"
    # Without PostgreSQL the audit log follows the state store (shared by all workers).
    assert settings.audit_url == "redis://cache:6379"


def test_redis_db_and_password_are_applied_to_state_url(devcrew_home: Path) -> None:
    settings = load_settings(
        environ=env_for(
            devcrew_home, REDIS_URL="redis://cache:6379", REDIS_DB="2", REDIS_PASSWORD="p@ss/w"
        )
    )
    assert settings.state_url == "redis://:p%40ss%2Fw@cache:6379/2"
    assert settings.redis_url == "redis://cache:6379"


def test_redis_password_keeps_url_user(devcrew_home: Path) -> None:
    settings = load_settings(
        environ=env_for(devcrew_home, REDIS_URL="redis://app@cache:6379", REDIS_PASSWORD="pw")
    )
    assert settings.state_url == "redis://app:pw@cache:6379"


def test_password_in_redis_url_wins_over_redis_password(devcrew_home: Path) -> None:
    settings = load_settings(
        environ=env_for(devcrew_home, REDIS_URL="redis://:inurl@cache:6379", REDIS_PASSWORD="x")
    )
    assert settings.state_url == "redis://:inurl@cache:6379"


def test_redis_db_does_not_replace_a_db_in_the_url(devcrew_home: Path) -> None:
    settings = load_settings(
        environ=env_for(devcrew_home, REDIS_URL="redis://cache:6379/5", REDIS_DB="2")
    )
    assert settings.state_url == "redis://cache:6379/5"


def test_postgres_settings_become_audit_url(devcrew_home: Path) -> None:
    settings = load_settings(
        environ=env_for(
            devcrew_home,
            POSTGRES_HOST="pg",
            POSTGRES_PORT="5433",
            POSTGRES_DB="audit",
            POSTGRES_USER="orch",
            POSTGRES_PASSWORD="a b@c",
        )
    )
    assert settings.audit_url == "postgresql://orch:a%20b%40c@pg:5433/audit"
    assert settings.sources["audit_url"] == "derived from postgres_*"
    assert settings.state_url == default_db(devcrew_home)


def test_postgres_without_host_is_ignored(devcrew_home: Path) -> None:
    settings = load_settings(environ=env_for(devcrew_home, POSTGRES_USER="orch"))
    assert settings.audit_url == default_db(devcrew_home)


def test_redis_and_postgres_together(devcrew_home: Path) -> None:
    settings = load_settings(
        environ=env_for(devcrew_home, REDIS_URL="redis://r:6379", POSTGRES_HOST="pg")
    )
    assert settings.state_url == "redis://r:6379"
    assert settings.audit_url == "postgresql://pg:5432/multi_agent_platform"


def test_explicit_state_url_is_followed_by_audit(devcrew_home: Path) -> None:
    settings = load_settings(environ=env_for(devcrew_home), state_url="sqlite:////tmp/x.db")
    assert settings.state_url == "sqlite:////tmp/x.db"
    assert settings.audit_url == "sqlite:////tmp/x.db"
    assert settings.sources["state_url"] == "argument"


def test_explicit_audit_url_is_kept(devcrew_home: Path) -> None:
    settings = load_settings(
        environ=env_for(devcrew_home, DEVCREW_AUDIT_URL="postgresql://a/b")
    )
    assert settings.audit_url == "postgresql://a/b"
    assert settings.state_url == default_db(devcrew_home)


def test_state_url_at_higher_layer_wins_over_redis_url(devcrew_home: Path) -> None:
    write_config(devcrew_home, "redis_url: redis://fromfile:6379\n")
    settings = load_settings(
        environ=env_for(devcrew_home, DEVCREW_STATE_URL="sqlite:////tmp/env.db")
    )
    assert settings.state_url == "sqlite:////tmp/env.db"
    assert settings.sources["state_url"] == "env:DEVCREW_STATE_URL"
    by_argument = load_settings(
        environ=env_for(devcrew_home, REDIS_URL="redis://env:6379"),
        state_url="sqlite:////tmp/arg.db",
    )
    assert by_argument.state_url == "sqlite:////tmp/arg.db"


def test_redis_url_at_higher_layer_wins_over_state_url(devcrew_home: Path) -> None:
    write_config(devcrew_home, "state_url: sqlite:////tmp/file.db\n")
    settings = load_settings(environ=env_for(devcrew_home, REDIS_URL="redis://env:6379"))
    assert settings.state_url == "redis://env:6379"
    assert settings.sources["state_url"] == "derived from redis_url (env:REDIS_URL)"
    by_argument = load_settings(
        environ=env_for(devcrew_home, DEVCREW_STATE_URL="sqlite:////tmp/env.db"),
        redis_url="redis://arg:6379",
    )
    assert by_argument.state_url == "redis://arg:6379"


def test_state_url_wins_over_redis_url_at_the_same_layer(devcrew_home: Path) -> None:
    write_config(devcrew_home, "redis_url: redis://r:6379\nstate_url: sqlite:////tmp/s.db\n")
    settings = load_settings(environ=env_for(devcrew_home))
    assert settings.state_url == "sqlite:////tmp/s.db"
    assert settings.sources["state_url"] == "file"
    by_argument = load_settings(
        environ=env_for(devcrew_home), redis_url="redis://r:1", state_url="sqlite:////tmp/a.db"
    )
    assert by_argument.state_url == "sqlite:////tmp/a.db"


def test_audit_url_and_postgres_across_layers(devcrew_home: Path) -> None:
    write_config(devcrew_home, "postgres_host: filepg\n")
    higher_audit = load_settings(
        environ=env_for(devcrew_home, DEVCREW_AUDIT_URL="sqlite:////tmp/audit.db")
    )
    assert higher_audit.audit_url == "sqlite:////tmp/audit.db"

    write_config(devcrew_home, "audit_url: sqlite:////tmp/audit.db\n")
    higher_pg = load_settings(environ=env_for(devcrew_home, POSTGRES_HOST="envpg"))
    assert higher_pg.audit_url == "postgresql://envpg:5432/multi_agent_platform"

    write_config(devcrew_home, "audit_url: sqlite:////tmp/audit.db\npostgres_host: pg\n")
    same_layer = load_settings(environ=env_for(devcrew_home))
    assert same_layer.audit_url == "sqlite:////tmp/audit.db"


# --------------------------------------------------------------------------- errors


def test_unknown_key_names_file_key_and_close_match(devcrew_home: Path) -> None:
    path = write_config(devcrew_home, "redis_urll: redis://x\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env_for(devcrew_home))
    message = str(info.value)
    assert str(path) in message
    assert "redis_urll" in message
    assert "did you mean 'redis_url'" in message


def test_unknown_key_without_close_match(devcrew_home: Path) -> None:
    write_config(devcrew_home, "zzzqqq: 1\n")
    with pytest.raises(ConfigError, match=r"unknown setting.*zzzqqq") as info:
        load_settings(environ=env_for(devcrew_home))
    assert "did you mean" not in str(info.value)


def test_internal_fields_are_not_settings(devcrew_home: Path) -> None:
    write_config(devcrew_home, "sources: {}\n")
    with pytest.raises(ConfigError, match="sources"):
        load_settings(environ=env_for(devcrew_home))


@pytest.mark.parametrize(
    ("line", "key", "value"),
    [
        ("redis_db: lots", "redis_db", "lots"),
        ("postgres_port: 70000", "postgres_port", "70000"),
        ("agent_ttl_seconds: -5", "agent_ttl_seconds", "-5"),
        ("log_level: LOUD", "log_level", "LOUD"),
        ("celery_task_serializer: pickle", "celery_task_serializer", "pickle"),
        ("default_max_concurrent_tasks: 0", "default_max_concurrent_tasks", "0"),
        ("redis_key_prefix: 'a:b'", "redis_key_prefix", "a:b"),
    ],
)
def test_wrong_type_in_file_names_file_key_and_value(
    devcrew_home: Path, line: str, key: str, value: str
) -> None:
    path = write_config(devcrew_home, line + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env_for(devcrew_home))
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert key in message
    assert value in message


def test_invalid_yaml_names_file_and_line(devcrew_home: Path) -> None:
    path = write_config(devcrew_home, "log_level: INFO\nredis_db: 1\n  bad: [indent\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env_for(devcrew_home))
    message = str(info.value)
    assert str(path) in message
    assert "invalid YAML" in message
    assert "line 3" in message


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("just a string\n", "str"),
                                           ("42\n", "int")])
def test_non_mapping_file_is_an_error(devcrew_home: Path, text: str, kind: str) -> None:
    path = write_config(devcrew_home, text)
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env_for(devcrew_home))
    assert str(path) in str(info.value)
    assert "mapping" in str(info.value)
    assert kind in str(info.value)


def test_config_file_that_is_a_directory(devcrew_home: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(config_file=tmp_path, environ=env_for(devcrew_home))


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("REDIS_DB", "zero"),
        ("DEVCREW_REDIS_DB", "-1"),
        ("POSTGRES_PORT", "port"),
        ("DEVCREW_AGENT_TTL_SECONDS", "0"),
        ("DEVCREW_LOG_LEVEL", "chatty"),
        ("DEVCREW_CONNECTION_POOL_SIZE", "1.5"),
    ],
)
def test_bad_environment_value_names_the_variable(
    devcrew_home: Path, variable: str, value: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env_for(devcrew_home, **{variable: value}))
    message = str(info.value)
    assert f"environment variable {variable}" in message
    assert repr(value) in message


def test_bad_argument_value_is_a_config_error(devcrew_home: Path) -> None:
    with pytest.raises(ConfigError, match=r"arguments: postgres_port.*99999"):
        load_settings(environ=env_for(devcrew_home), postgres_port=99999)


def test_config_error_is_a_usage_error_with_exit_code_2(devcrew_home: Path) -> None:
    write_config(devcrew_home, "[unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env_for(devcrew_home))
    assert isinstance(info.value, UsageError)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("where", ["file", "argument"])
def test_mistyped_password_is_not_echoed_in_the_error(devcrew_home: Path, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        if where == "file":
            write_config(devcrew_home, "postgres_password: 73314159\n")
            load_settings(environ=env_for(devcrew_home))
        else:
            load_settings(environ=env_for(devcrew_home), redis_password=73314159)
    assert "password" in str(info.value)
    assert "73314159" not in str(info.value)


# --------------------------------------------------------------------------- secrets


def secret_settings(devcrew_home: Path) -> Settings:
    return load_settings(
        environ=env_for(
            devcrew_home,
            REDIS_URL="redis://cache:6379",
            REDIS_PASSWORD=SECRET,
            POSTGRES_HOST="pg",
            POSTGRES_USER="orch",
            POSTGRES_PASSWORD=SECRET + "-pg",
            DEVCREW_CELERY_BROKER_URL=f"redis://:{SECRET}-celery@broker:6379/1",
        )
    )


def test_display_masks_passwords(devcrew_home: Path) -> None:
    settings = secret_settings(devcrew_home)
    # The real values are there for the stores to use...
    assert SECRET in (settings.state_url or "")
    assert SECRET in (settings.audit_url or "")
    shown = settings.display()
    assert shown["redis_password"] == "********"
    assert shown["postgres_password"] == "********"
    assert shown["state_url"] == "redis://:********@cache:6379"
    assert shown["audit_url"] == "postgresql://orch:********@pg:5432/multi_agent_platform"
    assert shown["celery_broker_url"] == "redis://:********@broker:6379/1"
    assert shown["home"] == str(devcrew_home)
    assert "sources" not in shown and "config_file" not in shown
    # ...but never in what is shown.
    assert SECRET not in repr(shown)


def test_repr_and_str_do_not_leak_passwords(devcrew_home: Path) -> None:
    settings = secret_settings(devcrew_home)
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert "cache:6379" in repr(settings)


def test_password_in_redis_url_itself_is_masked(devcrew_home: Path) -> None:
    settings = load_settings(environ=env_for(devcrew_home, REDIS_URL=f"redis://u:{SECRET}@h:1"))
    assert SECRET not in repr(settings)
    assert SECRET not in repr(settings.display())
    assert settings.display()["redis_url"] == "redis://u:********@h:1"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://localhost:6379", "redis://localhost:6379"),
        ("redis://:pw@localhost:6379/0", "redis://:********@localhost:6379/0"),
        ("redis://user:pw@localhost", "redis://user:********@localhost"),
        ("redis://user@localhost", "redis://user@localhost"),
        ("postgresql://u:p%40ss@db:5432/x", "postgresql://u:********@db:5432/x"),
        ("redis://:pw@[::1]:6379/0", "redis://:********@[::1]:6379/0"),
        ("postgresql://u:pw@db:notaport/x", "postgresql://u:********@db:notaport/x"),
        ("redis://:p@ss@host:1", "redis://:********@host:1"),
        ("postgresql://db/x?user=u&password=pw&sslmode=require",
         "postgresql://db/x?user=u&password=********&sslmode=require"),
        ("sqlite:////tmp/devcrew.db", "sqlite:////tmp/devcrew.db"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_mask_url_never_raises_on_malformed_url() -> None:
    masked = mask_url("redis://:hunter2@[::1:6379")
    assert "hunter2" not in masked
