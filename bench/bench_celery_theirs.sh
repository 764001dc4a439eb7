#!/usr/bin/env bash
# Sets up the existing product for bench_celery.py's `theirs` variant, outside our environments:
# a virtualenv with z4j-celery 1.13 and z4j 1.13 from the package index, a z4j 1.13 server on
# SQLite at 127.0.0.1:7711 (left running; its pid is in $DIR/serve.pid), an admin, and an agent
# token minted with the server's own code. Writes $DIR/theirs.env for `--theirs-env`.
# Usage: bench/bench_celery_theirs.sh [DIR]   (default /tmp/z4j-theirs-bench)
set -euo pipefail
DIR=${1:-/tmp/z4j-theirs-bench}
VENV=$DIR/venv
mkdir -p "$DIR"
if [ ! -x "$VENV/bin/z4j" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet 'z4j-celery==1.13' 'z4j==1.13' 'celery[redis]'
fi
export HOME=$DIR Z4J_DATABASE_URL=sqlite+aiosqlite:///$DIR/z4j.db Z4J_ENVIRONMENT=dev \
    Z4J_BIND_HOST=127.0.0.1 Z4J_BIND_PORT=7711 Z4J_PUBLIC_URL=http://127.0.0.1:7711 \
    Z4J_LOG_JSON=false
"$VENV/bin/z4j" serve > "$DIR/serve.log" 2>&1 &
echo $! > "$DIR/serve.pid"
for _ in $(seq 60); do
    curl -sf -o /dev/null http://127.0.0.1:7711/api/v1/health && break
    sleep 1
done
"$VENV/bin/z4j" bootstrap-admin --email bench@example.com --password 'Bench-Passw0rd-123!' \
    > /dev/null 2>&1 || true  # already provisioned on a second run
set -a
# shellcheck disable=SC1091
. "$DIR/.z4j/secret.env"
set +a
"$VENV/bin/python" - > "$DIR/theirs.env" <<'PY'
import asyncio, base64, secrets, uuid
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from z4j_brain.persistence.database import create_engine_from_settings
from z4j_brain.persistence.repositories.agents import AgentRepository
from z4j_brain.settings import Settings
from z4j_brain.websocket.auth import hash_agent_token
from z4j_core.transport.hmac import derive_project_secret

async def main():
    settings = Settings()
    engine = create_engine_from_settings(settings)
    maker = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    async with maker() as session:
        project_id, slug = (await session.execute(text("select id, slug from projects"))).first()
        project_id = project_id if isinstance(project_id, uuid.UUID) else uuid.UUID(str(project_id))
        agents = AgentRepository(session)
        token = secrets.token_urlsafe(32)
        secret = settings.secret.get_secret_value().encode()
        reservation = await agents.reserve_name(project_id=project_id, name=f"bench-{secrets.token_hex(3)}")
        await agents.insert_reserved(reservation=reservation, token_hash=hash_agent_token(plaintext=token, secret=secret))
        await session.commit()
    await engine.dispose()
    hmac = base64.urlsafe_b64encode(derive_project_secret(secret, project_id)).decode()
    print(f"BENCH_THEIRS_URL={settings.public_url}\nBENCH_THEIRS_TOKEN={token}")
    print(f"BENCH_THEIRS_PROJECT={slug}\nBENCH_THEIRS_HMAC={hmac}")
    print(f"BENCH_THEIRS_DB={settings.database_url.split(':///', 1)[1]}")

asyncio.run(main())
PY
echo "wrote $DIR/theirs.env; python: $VENV/bin/python; stop the server: kill \$(cat $DIR/serve.pid)"
