from django.db import migrations, models


class Migration(migrations.Migration):  # type: ignore[misc]
    initial = True
    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.CreateModel(
            name="TaskResult",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True,
                                           serialize=False, verbose_name="ID")),
                ("task_id", models.CharField(max_length=255, unique=True)),
                ("status", models.CharField(db_index=True, max_length=50)),
                ("result", models.TextField(null=True)),
                ("traceback", models.TextField(null=True)),
                ("date_done", models.DateTimeField(db_index=True, null=True)),
                ("meta", models.TextField()),
                ("expires_at", models.FloatField(null=True)),
            ],
            options={"verbose_name": "task result"},
        ),
    ]
