"""Tables of the users module."""

from __future__ import annotations

from fastapi_users_db_sqlalchemy import SQLAlchemyBaseUserTableUUID

from app.database import Base


class User(SQLAlchemyBaseUserTableUUID, Base):
    """fastapi-users' user table (UUID ids): email, hashed_password and the three flags."""
