"""Audit entries gain the actions ``lock`` and ``unlock`` (record locking with an
e-signature, docs/audit.md); the column is unchanged (a choice list only)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("spinereg", "0004_registry_columns"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditentry",
            name="action",
            field=models.CharField(choices=[("create", "create"), ("update", "update"), ("delete", "delete"),
                                            ("lock", "lock"), ("unlock", "unlock")], max_length=8),
        ),
    ]
