"""One settings home: every variable documented, a .env file read, secrets kept secret."""

import re

from tweet_sentiment.core.config import ROOT, Settings


def names() -> list[str]:
    return [field.validation_alias.choices[0] for field in Settings.model_fields.values()]


def test_every_setting_is_in_the_settings_table_and_the_env_example():
    table, example = (ROOT / "docs" / "settings.md").read_text(), (ROOT / ".env.example").read_text()
    documented = re.findall(r"^\| `(\w+)` \|", table, flags=re.M)
    assert documented == names()
    assert all(f"# {name}=" in example for name in names())


def test_no_environment_read_outside_the_settings_module():
    offenders = [
        str(path.relative_to(ROOT))
        for path in [*(ROOT / "tweet_sentiment").rglob("*.py"), ROOT / "service.py", ROOT / "streamlit_app.py"]
        if path.name != "config.py" and re.search(r"os\.environ(?!\.update)|getenv", path.read_text())  # writes pass
    ]
    assert offenders == []


def test_environment_wins_over_env_file_and_secrets_stay_secret(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("SMTP_HOST=mail.example.com\nSMTP_PASSWORD=hunter2\nTWEETS_ALERT_THRESHOLD=7\n")
    monkeypatch.setenv("TWEETS_ALERT_THRESHOLD", "9")
    monkeypatch.setenv("TWEETS_DATA_DIR", "~/tweets")
    config = Settings(_env_file=env_file)
    assert (config.smtp_host, config.alert_threshold) == ("mail.example.com", 9)
    assert config.smtp_password.get_secret_value() == "hunter2" and "hunter2" not in repr(config)
    assert config.data_dir.is_absolute() and config.data_dir.name == "tweets"
