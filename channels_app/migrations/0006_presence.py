"""The database presence store's tables: a row per present connection, a
counter per (topic, user)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('channels_app', '0005_streams'),
    ]

    operations = [
        migrations.CreateModel(
            name='PresentConnection',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('topic', models.CharField(max_length=100)),
                ('connection', models.CharField(max_length=200)),
                ('user', models.CharField(max_length=200)),
                ('meta', models.TextField(default='{}')),
                ('expires_at', models.FloatField(db_index=True)),
            ],
            options={
                'db_table': 'channels_app_presence',
                'constraints': [models.UniqueConstraint(fields=('topic', 'connection'), name='channels_app_presence_conn_uniq')],
            },
        ),
        migrations.CreateModel(
            name='PresentUser',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('topic', models.CharField(max_length=100)),
                ('user', models.CharField(max_length=200)),
                ('connections', models.IntegerField(default=0)),
            ],
            options={
                'db_table': 'channels_app_presence_user',
                'constraints': [models.UniqueConstraint(fields=('topic', 'user'), name='channels_app_presence_user_uniq')],
            },
        ),
    ]
